// Safe output files: content is written to a temporary file in the destination directory,
// flushed to disk and renamed over the destination, so a crash or a full disk never leaves a
// half-written file under the real name. Errors name the path and the system's reason.
#pragma once
#include <string>

namespace lm::data {

void write_file_atomic(const std::string& path, const std::string& content);

// The file name a writer's temporary stands for, or "" when `file_name` is no temporary:
// write_file_atomic's ".<name>.tmp-<digits>" and write_safetensors' "<name>.tmp-XXXXXX"
// (mkstemp's six letters or digits). A killed writer leaves these; the commands that resume
// remove those of the files they own.
std::string atomic_target(const std::string& file_name);

// Creates `dir` (and parents). With overwrite == false, an existing non-empty directory is an
// error naming it (so a previous run is never overwritten silently). A lock file
// (data/run_lock.h) alone does not make a directory non-empty.
void prepare_output_dir(const std::string& dir, bool overwrite);

// The checks of prepare_output_dir without creating anything.
void check_output_dir(const std::string& dir, bool overwrite);

}  // namespace lm::data
