// The order of a new page-cache folio for readahead, as page_cache_ra_order
// sizes them: as large as the range allows, aligned to its own size, never
// overlapping a folio already cached, never below one block.

import { MAX_FOLIO_ORDER, PAGE_SIZE, type FolioCache } from "../cache/folio-cache.js";

export function readaheadFolioOrder(cache: FolioCache, mapping: number, index: number, limitByte: number): number {
  const limitPages = Math.max(1, Math.ceil(limitByte / PAGE_SIZE) - index);
  let order = Math.min(MAX_FOLIO_ORDER, Math.floor(Math.log2(limitPages)));
  while (order > 0 && index % (1 << order) !== 0) order--;
  order = Math.max(order, cache.minOrder);
  if (order > cache.minOrder) {
    const hit = cache.x.folioFirstCached(mapping, index, 1 << order);
    if (hit >= 0) order = hit === 0 ? cache.minOrder : Math.max(cache.minOrder, Math.floor(Math.log2(hit)));
  }
  return order;
}
