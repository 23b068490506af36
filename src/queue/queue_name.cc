#include "vigil/queue.h"

namespace vigil {

Status ValidateQueueName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= kMaxQueueNameLength;
  for (char c : name) {
    ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-');
  }
  if (ok) return Status::Ok();
  std::string shown(name.substr(0, kMaxQueueNameLength));
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return InvalidArgument("queue name '" + shown + (name.size() > kMaxQueueNameLength ? "...'" : "'") +
                         " is not 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'");
}

}  // namespace vigil
