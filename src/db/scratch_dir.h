// The temporary directories of `sluice rehearse` (SQLite's copy, pg_dump's
// files): `sluice-rehearsal-<label>-<pid>-XXXXXX` in the temporary
// directory ($TMPDIR, else /tmp). The pid in the name is the process that
// made it, so that the directories a killed rehearsal (SIGKILL) left
// behind can be told from those of a rehearsal running now.
#pragma once

#include <string>
#include <vector>

#include "sluice/status.h"

namespace sluice::db {

// The prefix of every rehearsal directory's name.
inline constexpr const char* kScratchDirPrefix = "sluice-rehearsal-";

// `label` (e.g. the migration's name) cleaned for a file or database name:
// lower-case letters and digits, anything else '_'; at most `max` bytes.
std::string CleanScratchLabel(const std::string& label, size_t max);

// Creates a new, private (0700) directory for `label` (e.g. the migration's
// name, cleaned to [a-z0-9_]) owned by this process; its path.
Result<std::string> MakeScratchDir(const std::string& label);

// Marks `dir` as kept (`rehearse --keep`): a file KEPT in it, so that
// DropLeftoverScratchDirs leaves it alone once its process is gone.
Status MarkScratchDirKept(const std::string& dir);

// Removes every rehearsal directory in the temporary directory whose
// process is gone (a live pid's, one whose name carries no pid, or one
// marked kept, is left alone); one line per directory removed or that
// could not be.
std::vector<std::string> DropLeftoverScratchDirs();

}  // namespace sluice::db
