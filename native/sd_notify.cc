#include "glibc_floor.h"

#include "sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

namespace pulse {

int ParseNotifyAddress(const std::string& text, sockaddr_un* addr, socklen_t* len) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (text.size() < 2 || (text[0] != '/' && text[0] != '@')) return EINVAL;
  if (text.find('\0') != std::string::npos) return EINVAL;
  // A path needs its terminating NUL inside sun_path; an abstract name is
  // the leading NUL and the name's bytes, with no terminator.
  const size_t room = sizeof addr->sun_path - (text[0] == '/' ? 1 : 0);
  if (text.size() > room) return ENAMETOOLONG;
  memcpy(addr->sun_path, text.data(), text.size());
  if (text[0] == '@') addr->sun_path[0] = '\0';
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + text.size() +
                                (text[0] == '/' ? 1 : 0));
  return 0;
}

Notifier::~Notifier() {
  if (fd_ >= 0) close(fd_);
}

int Notifier::Open(const std::string& notify_socket) {
  open_error_ = ParseNotifyAddress(notify_socket, &addr_, &addr_len_);
  if (open_error_ != 0) return open_error_;
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) open_error_ = errno;
  return open_error_;
}

int Notifier::Send(const std::string& message) const {
  if (fd_ < 0) return open_error_ != 0 ? open_error_ : EBADF;
  const ssize_t sent = sendto(fd_, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                              reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
  return sent < 0 ? errno : 0;
}

}  // namespace pulse
