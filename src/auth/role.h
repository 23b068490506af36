// Who may call what: the roles of Vigil's callers, the set of roles a route admits, and the one
// rule that says whether a caller's role may call a route. The route table (serve/router.h)
// names each route's roles; nothing else decides.
#ifndef VIGIL_AUTH_ROLE_H_
#define VIGIL_AUTH_ROLE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "vigil/status.h"

namespace vigil {

// kPublic is not a caller's role: a route admitting it needs no credentials.
enum class Role : uint8_t { kPublic, kViewer, kScorer, kProcessor, kAnalyst, kAdmin };
inline constexpr Role kCallerRoles[] = {Role::kViewer, Role::kScorer, Role::kProcessor,
                                        Role::kAnalyst, Role::kAdmin};

std::string_view RoleName(Role role);
// A caller's role by its name ("admin", ...); InvalidArgument listing the names otherwise.
StatusOr<Role> ParseRole(std::string_view name);

// The roles a route admits, or a caller holds (a token may grant several). Implicit from one
// Role, so a route table reads `Role::kScorer` or `Role::kScorer | Role::kProcessor`.
class RoleSet {
 public:
  constexpr RoleSet() : bits_(0) {}
  constexpr RoleSet(Role role) : bits_(Bit(role)) {}  // NOLINT: implicit by design
  constexpr RoleSet operator|(RoleSet other) const { return RoleSet(bits_ | other.bits_); }
  constexpr bool Has(Role role) const { return (bits_ & Bit(role)) != 0; }
  constexpr bool Intersects(RoleSet other) const { return (bits_ & other.bits_) != 0; }
  bool IsPublic() const { return Has(Role::kPublic); }
  bool Empty() const { return bits_ == 0; }
  // "scorer or processor", for error messages.
  std::string Names() const;

 private:
  constexpr explicit RoleSet(uint32_t bits) : bits_(bits) {}
  static constexpr uint32_t Bit(Role r) { return uint32_t{1} << static_cast<unsigned>(r); }
  uint32_t bits_;
};
constexpr RoleSet operator|(Role a, Role b) { return RoleSet(a) | RoleSet(b); }

// Whether a caller holding `roles` may call a route admitting `route`: a public route anyone; an
// admin every route; a viewer route (status, metrics) every caller with a role; otherwise a
// caller holding one of the roles named.
bool Admits(RoleSet route, RoleSet roles);

}  // namespace vigil

#endif  // VIGIL_AUTH_ROLE_H_
