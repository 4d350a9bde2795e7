// systemd's notify protocol (sd_notify(3)): datagrams such as "WATCHDOG=1" or
// "STATUS=..." sent to the AF_UNIX socket named by NOTIFY_SOCKET. Plain POSIX,
// no Node-API, and no libsystemd: a few lines of the protocol are all a
// process needs.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <string>

namespace pulse {

// The address NOTIFY_SOCKET names: an absolute path, or "@name" for an
// abstract socket. Returns 0, or EINVAL (neither form), ENAMETOOLONG (longer
// than sun_path). A pure function of its input.
int ParseNotifyAddress(const std::string& text, sockaddr_un* addr, socklen_t* len);

class Notifier {
 public:
  Notifier() = default;
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Parses the address and opens a non-blocking, close-on-exec datagram
  // socket. Returns 0 or an errno value; on failure Send() returns it again.
  int Open(const std::string& notify_socket);
  // One datagram, never blocking: a full or missing receiver is an errno
  // value returned, not an exception or a signal. Safe from any thread once
  // Open() returned (one sendto on a descriptor that lives until the
  // destructor).
  int Send(const std::string& message) const;
  bool opened() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  int open_error_ = 0;
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
};

}  // namespace pulse
