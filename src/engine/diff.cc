// sluice::Diff (`sluice diff`): one table compared across two databases.
// The comparison itself is verify::Diff; this opens both sides.
#include "db/adapter.h"
#include "sluice/sluice.h"
#include "verify/verify.h"

namespace sluice {

Result<DiffResult> Diff(const DiffOptions& options) {
  if (options.table.empty()) return InvalidArgument("diff needs a table (--table)");
  db::OpenOptions so, to;
  so.schema = options.source_schema;
  to.schema = options.target_schema;
  SLUICE_ASSIGN_OR_RETURN(auto sa, db::OpenAdapter(options.source_url, so));
  SLUICE_ASSIGN_OR_RETURN(auto ta, db::OpenAdapter(options.target_url, to));
  auto sc = sa->Connect();
  if (!sc.ok()) return sc.status().WithContext("source");
  auto tc = ta->Connect();
  if (!tc.ok()) return tc.status().WithContext("target");
  verify::DiffSpec spec;
  spec.table = options.table;
  spec.key = options.key;
  spec.chunk_rows = options.chunk_rows;
  spec.max_reported = options.max_reported;
  spec.cancel = options.cancel;
  SLUICE_ASSIGN_OR_RETURN(verify::DiffReport r, verify::Diff(**sc, **tc, spec));
  DiffResult out;
  out.same = r.same;
  out.source_rows = r.source_rows;
  out.target_rows = r.target_rows;
  out.chunks = r.chunks;
  out.differing_chunks = r.differing_chunks;
  out.chunk_queries = r.chunk_queries;
  out.bisect_queries = r.bisect_queries;
  out.key_queries = r.key_queries;
  out.differences = r.differences;
  out.truncated = r.truncated;
  out.evidence = r.evidence;
  out.notes = r.notes;
  out.json = r.ToJson();
  return out;
}

}  // namespace sluice
