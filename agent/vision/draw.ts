// Draws detections (boxes, scores, landmarks) over an image as an SVG layer composited by sharp.
import sharp from 'sharp';
import type { RgbImage } from './image.js';
import type { DetectedFace } from './mtcnn.js';

const LANDMARK_COLOURS = ['#00e5ff', '#2979ff', '#ffea00', '#ff1744', '#ff9100'];

export async function drawDetections(image: RgbImage, faces: readonly DetectedFace[]): Promise<Buffer> {
  const stroke = Math.max(2, Math.round(Math.min(image.width, image.height) / 300));
  const shapes = faces.map((f, i) => {
    const { x1, y1, x2, y2 } = f.box;
    const marks = f.landmarks
      .map((p, k) => `<circle cx="${p.x.toFixed(1)}" cy="${p.y.toFixed(1)}" r="${stroke * 1.5}" fill="${LANDMARK_COLOURS[k]}"/>`)
      .join('');
    return (
      `<rect x="${x1.toFixed(1)}" y="${y1.toFixed(1)}" width="${(x2 - x1).toFixed(1)}" height="${(y2 - y1).toFixed(1)}" ` +
      `fill="none" stroke="#00e676" stroke-width="${stroke}"/>` +
      `<text x="${x1.toFixed(1)}" y="${(y1 - stroke * 2).toFixed(1)}" fill="#00e676" font-family="sans-serif" ` +
      `font-size="${stroke * 8}">#${i} ${f.score.toFixed(2)}</text>${marks}`
    );
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${image.width}" height="${image.height}">${shapes.join('')}</svg>`;
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .png()
    .toBuffer();
}
