// Writes a directory of files (a checkpoint) so that the destination shows either its previous
// contents or the complete new ones, never a mix, even when the run is interrupted or the disk
// fills up.
//
// Files are written into a staging directory beside the destination ("<dir>.tmp.<pid>.<n>",
// same filesystem so renames are atomic), registered for removal on interruption
// (io/interrupt_cleanup.h). commit() publishes them inside a CommitSection:
//  - kReplace: the destination becomes exactly the staging directory. An existing destination
//    is swapped with it in one renameat2(RENAME_EXCHANGE) (two renames where the filesystem lacks
//    it, still inside the section), then the old contents are removed.
//  - kMerge: each staged file is renamed over the same name in the destination, `last` after
//    all others (config.json: a directory holding it is a complete checkpoint), and the names in
//    `remove` (stale files of a previous save) are deleted; other files in the destination are
//    left alone. Used where the destination may hold the user's own files.
// If commit() is never reached, the destructor removes the staging directory.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "io/interrupt_cleanup.h"

namespace lowbit {

class AtomicDirectory {
 public:
  enum class Mode { kReplace, kMerge };
  // Creates the staging directory; in merge mode also the destination's parent directories
  // (a new HF directory may be nested), in replace mode the parent must exist (kIo).
  static Result<AtomicDirectory> create(const std::string& dir, Mode mode);
  AtomicDirectory(AtomicDirectory&& other) noexcept;
  AtomicDirectory& operator=(AtomicDirectory&&) = delete;
  ~AtomicDirectory();

  // Where to write file `name` before commit().
  std::string file(const std::string& name) const { return staging_ + "/" + name; }
  const std::string& staging() const { return staging_; }
  const std::string& path() const { return path_; }

  Status commit(const std::string& last = "", const std::vector<std::string>& remove = {});

 private:
  AtomicDirectory() = default;
  Status commit_replace();
  Status commit_merge(const std::string& last, const std::vector<std::string>& remove);
  std::string path_, staging_;
  Mode mode_ = Mode::kReplace;
  bool live_ = false;  // staging directory exists and is ours to remove
  TempPathRegistration registration_;
};

}  // namespace lowbit
