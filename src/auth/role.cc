#include "auth/role.h"

namespace vigil {

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kPublic:
      return "public";
    case Role::kViewer:
      return "viewer";
    case Role::kScorer:
      return "scorer";
    case Role::kProcessor:
      return "processor";
    case Role::kAnalyst:
      return "analyst";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

StatusOr<Role> ParseRole(std::string_view name) {
  for (Role r : kCallerRoles) {
    if (RoleName(r) == name) return r;
  }
  return InvalidArgument("unknown role '" + std::string(name) +
                         "' (one of admin, analyst, scorer, processor, viewer)");
}

std::string RoleSet::Names() const {
  std::string out;
  for (Role r : kCallerRoles) {
    if (!Has(r)) continue;
    if (!out.empty()) out += " or ";
    out += RoleName(r);
  }
  return out.empty() ? std::string(RoleName(Role::kPublic)) : out;
}

bool Admits(RoleSet route, RoleSet roles) {
  if (route.IsPublic()) return true;
  if (roles.Empty()) return false;
  return roles.Has(Role::kAdmin) || route.Has(Role::kViewer) || route.Intersects(roles);
}

}  // namespace vigil
