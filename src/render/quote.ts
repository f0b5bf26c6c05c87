/**
 * Shell quoting lives in `src/model/quote.ts` (schedulers use it and sit below render). This
 * re-export keeps `render-runs.ts`'s `./quote.js` import working until its owner moves it; then delete it.
 */
export { oneLine, quoteArgv, quoteDirective, quoteShell } from '../model/quote.js';
