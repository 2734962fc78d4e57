// Links one camera's detections across frames into tracks and decides when to report them.
// A track's identity is a score-weighted vote over its frames. One event when the track becomes
// confident, another only if its identity changes; a per-identity cooldown makes one visitor one
// event even when the track breaks (a turned head, an occlusion) and restarts.
import { type Box, overlap } from '../vision/geometry.js';
import type { OcclusionPrediction } from '../recognition/occlusion-masks.js';

export interface TrackerOptions {
  /** Minimum IoU between a track's last box and a detection to continue the track. */
  iouThreshold: number;
  /** A track not seen for this long is closed. */
  maxAgeMs: number;
  /** Votes (frames with a decisive match) before a track may report. */
  minVotes: number;
  /** Share of the vote weight the leading identity needs. */
  minShare: number;
  /** Same identity on the same camera is not reported again within this time. */
  cooldownMs: number;
  /** Report confident unknown faces. */
  reportUnknown: boolean;
}

export const DEFAULT_TRACKER_OPTIONS: TrackerOptions = {
  iouThreshold: 0.3,
  maxAgeMs: 2000,
  minVotes: 3,
  minShare: 0.6,
  cooldownMs: 30_000,
  reportUnknown: true,
};

/** What the matcher said about one face in one frame. */
export interface FaceObservation {
  box: Box;
  detectionScore: number;
  /** Matched name, or null. */
  identity: string | null;
  /** The face is confidently nobody in the gallery. */
  unknown: boolean;
  distance: number;
  /** The occlusion the matcher predicted (occlusion-aware matching only). */
  occlusion?: OcclusionPrediction;
  /** A face mask was detected. */
  masked?: boolean;
}

export interface TrackDecision {
  trackId: string;
  identity: string | null;
  unknown: boolean;
  /** The leading identity's share of the track's vote weight (0..1). */
  score: number;
  /** Mean distance of the frames that voted for the decision. */
  distance: number;
  box: Box;
  frameTime: number;
  /** The occlusion of the track's latest face (occlusion-aware matching only). */
  occlusion?: OcclusionPrediction;
  /** The latest face of the track wore a face mask. */
  masked: boolean;
}

const UNKNOWN = '\u0000unknown';

interface Track {
  id: string;
  box: Box;
  lastSeen: number;
  votes: Map<string, { weight: number; distanceSum: number; count: number }>;
  reported: string | undefined;
  /** The latest face's occlusion and mask flag. */
  occlusion?: OcclusionPrediction;
  masked: boolean;
}

export class FaceTracker {
  private tracks: Track[] = [];
  private nextId = 1;
  private readonly lastReported = new Map<string, number>();
  readonly options: TrackerOptions;

  constructor(
    private readonly camera: string,
    options: Partial<TrackerOptions> = {},
  ) {
    this.options = { ...DEFAULT_TRACKER_OPTIONS, ...options };
  }

  get activeTracks(): number {
    return this.tracks.length;
  }

  /** Feeds one frame's faces; returns the decisions to publish now. */
  update(frameTime: number, faces: readonly FaceObservation[]): TrackDecision[] {
    const o = this.options;
    this.tracks = this.tracks.filter((t) => frameTime - t.lastSeen <= o.maxAgeMs);
    // Greedy assignment by IoU, best pairs first.
    const pairs: { t: number; f: number; iou: number }[] = [];
    this.tracks.forEach((t, ti) => faces.forEach((f, fi) => {
      const iou = overlap(t.box, f.box);
      if (iou >= o.iouThreshold) pairs.push({ t: ti, f: fi, iou });
    }));
    pairs.sort((a, b) => b.iou - a.iou);
    const trackFor = new Map<number, Track>();
    const usedTracks = new Set<number>();
    for (const p of pairs) {
      if (usedTracks.has(p.t) || trackFor.has(p.f)) continue;
      usedTracks.add(p.t);
      trackFor.set(p.f, this.tracks[p.t] as Track);
    }
    const decisions: TrackDecision[] = [];
    faces.forEach((face, fi) => {
      let track = trackFor.get(fi);
      if (!track) {
        track = { id: `${this.camera}-${this.nextId++}`, box: face.box, lastSeen: frameTime, votes: new Map(), reported: undefined, masked: false };
        this.tracks.push(track);
      }
      track.box = face.box;
      track.lastSeen = frameTime;
      if (face.occlusion) track.occlusion = face.occlusion;
      else delete track.occlusion;
      track.masked = face.masked ?? false;
      const key = face.identity ?? (face.unknown ? UNKNOWN : undefined);
      if (key !== undefined) {
        const v = track.votes.get(key) ?? { weight: 0, distanceSum: 0, count: 0 };
        v.weight += face.detectionScore;
        v.distanceSum += face.distance;
        v.count++;
        track.votes.set(key, v);
      }
      const decision = this.decide(track, frameTime);
      if (decision) decisions.push(decision);
    });
    return decisions;
  }

  private decide(track: Track, frameTime: number): TrackDecision | undefined {
    const o = this.options;
    let total = 0;
    let votes = 0;
    let leader: string | undefined;
    let best = -1;
    for (const [key, v] of track.votes) {
      total += v.weight;
      votes += v.count;
      if (v.weight > best) {
        best = v.weight;
        leader = key;
      }
    }
    if (leader === undefined || votes < o.minVotes || best / total < o.minShare) return undefined;
    if (leader === track.reported) return undefined;
    if (leader === UNKNOWN && (!o.reportUnknown || track.reported !== undefined)) return undefined;
    track.reported = leader;
    if (leader !== UNKNOWN) {
      const last = this.lastReported.get(leader);
      if (last !== undefined && frameTime - last < o.cooldownMs) return undefined;
      this.lastReported.set(leader, frameTime);
    }
    const v = track.votes.get(leader) as { weight: number; distanceSum: number; count: number };
    return {
      trackId: track.id,
      identity: leader === UNKNOWN ? null : leader,
      unknown: leader === UNKNOWN,
      score: best / total,
      distance: v.distanceSum / v.count,
      box: track.box,
      frameTime,
      ...(track.occlusion ? { occlusion: track.occlusion } : {}),
      masked: track.masked,
    };
  }
}
