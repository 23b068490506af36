// Durability: what a write must survive before Vigil counts it as done and says so (a score
// answered 200, a push answered 201). One setting for every durable component (the store, the
// embedded queue), from `--sync normal|full`.
#ifndef VIGIL_DURABILITY_H_
#define VIGIL_DURABILITY_H_

namespace vigil {

// What a write must survive before it counts as done.
enum class Durability {
  kProcessCrash,  // written to the operating system: survives kill -9 of the process, not a
                  // power loss or a kernel crash (the last moments of writes may be lost)
  kPowerLoss,     // on the disk (fdatasync): survives a power loss too; costs a disk flush,
                  // shared by the writes waiting together (group commit)
};

}  // namespace vigil

#endif  // VIGIL_DURABILITY_H_
