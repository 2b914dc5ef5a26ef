/**
 * The piscina worker: computes one deck page from the shared index. The index's buffers
 * arrive with each task (SharedArrayBuffers are shared, not copied); the typed-array views
 * and the cell grid are kept until the index's generation changes (it grew).
 */
import { DeckComputer, type DeckPage, type DeckQuery } from './deck-core.js';
import { CellGrid } from './grid.js';
import { fromShared, type IndexArrays, type SharedIndex } from './layout.js';

export interface DeckTask {
  index: SharedIndex;
  /** slots in use */
  used: number;
  query: DeckQuery;
}

let generation = -1;
let arrays: IndexArrays | undefined;
let grid: CellGrid | undefined;

export default function computeDeck(task: DeckTask): DeckPage {
  const { index } = task;
  if (index.generation !== generation || !arrays) {
    arrays = fromShared(index);
    if (!grid || grid.cellDeg !== index.cellDeg) grid = new CellGrid(index.cellDeg);
    generation = index.generation;
  }
  return new DeckComputer(arrays, task.used, grid).page(task.query);
}
