// The version of this build: the release and the git commit it was built from.
#ifndef VIGIL_CORE_VERSION_H_
#define VIGIL_CORE_VERSION_H_

#include <string>

namespace vigil {

// Defined in the build folder's generated version.cc, so a new commit recompiles one file.
extern const char* const kVersion;     // "0.1.0"
extern const char* const kGitVersion;  // `git describe --always --dirty`, or "unknown"

// "0.1.0 (2be34d3abcde)": what `vigil --version` prints and a model's code_version records.
inline std::string VersionString() { return std::string(kVersion) + " (" + kGitVersion + ")"; }

}  // namespace vigil

#endif  // VIGIL_CORE_VERSION_H_
