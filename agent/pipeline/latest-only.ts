// Backpressure for a slow stage: while `work` is busy, keep only the newest input (the older
// pending one is dropped and counted). At most one item waits, so nothing queues up behind a slow
// detector; a camera stream never grows memory.
import { Observable, type OperatorFunction } from 'rxjs';

export function latestOnly<T, R>(work: (item: T) => Promise<R>, onDrop: (item: T) => void = () => {}): OperatorFunction<T, R> {
  return (source) =>
    new Observable<R>((subscriber) => {
      let busy = false;
      let pending: { item: T } | undefined;
      let sourceDone = false;
      // After unsubscribe the item in progress finishes, but the pending one never starts: the
      // caller (a stopping camera) awaits only the work in progress before closing the models.
      let closed = false;
      const runNext = (item: T): void => {
        busy = true;
        work(item).then(
          (result) => {
            busy = false;
            if (closed) return;
            subscriber.next(result);
            const next = pending;
            pending = undefined;
            if (next) runNext(next.item);
            else if (sourceDone) subscriber.complete();
          },
          (err: unknown) => subscriber.error(err),
        );
      };
      const sub = source.subscribe({
        next: (item) => {
          if (!busy) return runNext(item);
          if (pending) onDrop(pending.item);
          pending = { item };
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => {
          sourceDone = true;
          if (!busy && !pending) subscriber.complete();
        },
      });
      return () => {
        closed = true;
        pending = undefined;
        sub.unsubscribe();
      };
    });
}
