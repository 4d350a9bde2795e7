// First, so the glibc symbol pins apply to every call below.
#include "glibc_floor.h"

#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "quiet_thread.h"

namespace pulse {
namespace {

constexpr size_t kStackSize = 256 * 1024;
// After its response, a connection's leftover request bytes are read and
// dropped for a short while, so that closing it does not reset the response
// away before the client read it (unread data makes close() send a RST).
constexpr int64_t kDrainNs = 500000000;
constexpr size_t kMaxDrainBytes = 2 * 1024 * 1024;
// How long the listener rests after accept() ran out of descriptors.
constexpr int64_t kAcceptPauseNs = 100000000;
// How much lower the server thread's priority is than the process's.
constexpr int kNiceIncrement = 5;

int64_t Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
  }
}

}  // namespace

std::string HttpResponse(int status, const char* content_type, const std::string& body, bool head,
                         const char* extra_headers) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
                    "\r\nContent-Type: " + content_type +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nCache-Control: no-store\r\nConnection: close\r\n" + extra_headers + "\r\n";
  if (!head) out += body;
  return out;
}

Server::~Server() {
  Stop();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_[0] >= 0) close(wake_[0]);
  if (wake_[1] >= 0) close(wake_[1]);
}

int Server::Bind(const std::string& host, int port, const char** op) {
  sockaddr_storage addr = {};
  socklen_t len = 0;
  int family = AF_INET6;
  in6_addr any6 = IN6ADDR_ANY_INIT;
  if (host.empty()) {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    a6->sin6_family = AF_INET6;
    a6->sin6_addr = any6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *a6;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
      family = AF_INET;
      a4->sin_family = AF_INET;
      a4->sin_port = htons(static_cast<uint16_t>(port));
      len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) == 1) {
      a6->sin6_family = AF_INET6;
      a6->sin6_port = htons(static_cast<uint16_t>(port));
      len = sizeof *a6;
    } else {
      *op = "parse";
      return EINVAL;  // validated by the caller; never reached from JS
    }
  }
  *op = "socket";
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 && host.empty() && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
    // No IPv6 here: every IPv4 interface, as Node falls back.
    auto* a4 = reinterpret_cast<sockaddr_in*>(&addr);
    memset(&addr, 0, sizeof addr);
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_ANY);
    a4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *a4;
    family = AF_INET;
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) return errno;
  const int one = 1, zero = 0;
  // As Node's listen(): a port in TIME_WAIT may be bound again at once (Linux
  // still refuses a second listener), and a bare port takes IPv4 too.
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6 && host.empty()) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  *op = "bind";
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    const int err = errno;
    close(fd);
    return err;
  }
  *op = "listen";
  if (listen(fd, 511) != 0) {
    const int err = errno;
    close(fd);
    return err;
  }
  sockaddr_storage bound = {};
  socklen_t bound_len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  char text[INET6_ADDRSTRLEN] = "";
  if (bound.ss_family == AF_INET6) {
    const auto* b6 = reinterpret_cast<const sockaddr_in6*>(&bound);
    inet_ntop(AF_INET6, &b6->sin6_addr, text, sizeof text);
    address_ = std::string("[") + text + "]:" + std::to_string(ntohs(b6->sin6_port));
  } else {
    const auto* b4 = reinterpret_cast<const sockaddr_in*>(&bound);
    inet_ntop(AF_INET, &b4->sin_addr, text, sizeof text);
    address_ = std::string(text) + ":" + std::to_string(ntohs(b4->sin_port));
  }
  *op = "pipe";
  if (pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) {
    const int err = errno;
    close(fd);
    return err;
  }
  listen_fd_ = fd;
  *op = "";
  return 0;
}

int Server::Start() {
  const int err = StartQuietThread(&thread_, kStackSize, ThreadMain, this);
  if (err == 0) started_ = true;
  return err;
}

void Server::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  const char byte = 1;
  // The pipe is empty before this (only Stop writes it): the write succeeds.
  ssize_t written = write(wake_[1], &byte, 1);
  (void)written;
  pthread_join(thread_, nullptr);
}

void* Server::ThreadMain(void* self) {
  static_cast<Server*>(self)->Run();
  return nullptr;
}

void Server::Close(size_t index) {
  close(conns_[index].fd);
  conns_.erase(conns_.begin() + static_cast<std::ptrdiff_t>(index));
}

void Server::Accept(int64_t now) {
  for (;;) {
    if (conns_.size() >= static_cast<size_t>(kMaxConnections)) {
      // Full: drop the oldest that has not sent a complete request (else the
      // oldest one only draining), so a slow client never locks a probe out.
      size_t victim = conns_.size();
      for (size_t i = 0; i < conns_.size() && victim == conns_.size(); i++) {
        if (!conns_[i].answered) victim = i;
      }
      for (size_t i = 0; i < conns_.size() && victim == conns_.size(); i++) {
        if (conns_[i].draining) victim = i;
      }
      if (victim == conns_.size()) return;  // all are writing answers: wait
      Close(victim);
    }
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors: the pending connection stays, and polling the
      // listener again at once would spin, so it rests a while.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        accept_paused_until_ns_ = now + kAcceptPauseNs;
      }
      return;  // EAGAIN, or a transient error (ECONNABORTED): next poll
    }
    Conn conn;
    conn.fd = fd;
    conn.opened_ns = now;
    conn.deadline_ns = now + kRequestTimeoutNs;
    conns_.push_back(std::move(conn));
    // The request is often there already: answered now, before a burst of
    // later connections could push this one out.
    if (!OnReadable(&conns_.back(), now)) Close(conns_.size() - 1);
  }
}

bool Server::OnReadable(Conn* conn, int64_t now) {
  char buf[4096];
  if (conn->draining) {
    for (;;) {
      const ssize_t n = recv(conn->fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) return false;
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      conn->drained += static_cast<size_t>(n);
      if (conn->drained > kMaxDrainBytes) return false;
    }
  }
  if (conn->answered) return true;
  bool eof = false;
  while (conn->in.size() <= kMaxRequestHead) {
    const ssize_t n = recv(conn->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) {
      eof = true;
      break;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return false;
    }
    // Only the bytes that can still belong to an acceptable head are kept.
    const size_t room = kMaxRequestHead + 1 - conn->in.size();
    conn->in.append(buf, static_cast<size_t>(n) < room ? static_cast<size_t>(n) : room);
  }
  Request request;
  const ParseStatus status = ParseRequest(conn->in.data(), conn->in.size(), &request);
  if (status == ParseStatus::kNeedMore) return !eof;
  if (status == ParseStatus::kOk) {
    conn->out = responder_->Respond(request);
  } else if (status == ParseStatus::kTooLarge) {
    conn->out = HttpResponse(431, "text/plain; charset=utf-8", "request head too large (at most 8 KiB)\n", false);
  } else {
    conn->out = HttpResponse(400, "text/plain; charset=utf-8", "malformed request\n", false);
  }
  std::string().swap(conn->in);  // freed (shrink_to_fit binds a newer libstdc++ symbol)
  conn->answered = true;
  conn->deadline_ns = now + kRequestTimeoutNs;
  return OnWritable(conn, now);
}

bool Server::OnWritable(Conn* conn, int64_t now) {
  while (conn->sent < conn->out.size()) {
    const ssize_t n = send(conn->fd, conn->out.data() + conn->sent, conn->out.size() - conn->sent,
                           MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == EINTR) continue;
      return false;
    }
    conn->sent += static_cast<size_t>(n);
  }
  // Sent: say so with a FIN, then drop whatever the client still sends.
  shutdown(conn->fd, SHUT_WR);
  std::string().swap(conn->out);
  conn->draining = true;
  conn->deadline_ns = now + kDrainNs;
  return OnReadable(conn, now);
}

void Server::Run() {
  prctl(PR_SET_NAME, "pulse-endpoint");  // this thread, for `top -H` and `ps -L`
  // This thread only (Linux's nice is per thread): a flood of requests
  // yields the CPU to the heartbeat thread and the loop, never the reverse.
  const id_t tid = static_cast<id_t>(syscall(SYS_gettid));
  errno = 0;
  const int nice_now = getpriority(PRIO_PROCESS, tid);
  if (errno == 0) setpriority(PRIO_PROCESS, tid, nice_now + kNiceIncrement > 19 ? 19 : nice_now + kNiceIncrement);
  std::vector<pollfd> fds;
  for (;;) {
    const int64_t now = Now();
    // Connections past their deadline are closed.
    for (size_t i = conns_.size(); i-- > 0;) {
      if (conns_[i].deadline_ns <= now) Close(i);
    }
    int64_t wait_ns = -1;
    for (const Conn& conn : conns_) {
      const int64_t left = conn.deadline_ns - now;
      if (wait_ns < 0 || left < wait_ns) wait_ns = left;
    }
    fds.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    // Full, with every connection writing an answer: new ones wait in the
    // backlog (polling the listener then would spin).
    bool room = conns_.size() < static_cast<size_t>(kMaxConnections);
    for (const Conn& conn : conns_) room = room || !conn.answered || conn.draining;
    if (accept_paused_until_ns_ > now) {
      room = false;
      const int64_t left = accept_paused_until_ns_ - now;
      if (wait_ns < 0 || left < wait_ns) wait_ns = left;
    }
    fds.push_back({listen_fd_, static_cast<short>(room ? POLLIN : 0), 0});
    for (const Conn& conn : conns_) {
      const bool writing = conn.answered && !conn.draining;
      fds.push_back({conn.fd, static_cast<short>(writing ? POLLOUT : POLLIN), 0});
    }
    const int timeout_ms = wait_ns < 0 ? -1 : static_cast<int>(wait_ns / 1000000 + 1);
    const int ready = poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;  // not expected with valid descriptors; the owner's Stop() still joins
    }
    if (fds[0].revents != 0) break;  // Stop()
    const int64_t after = Now();
    // Connections in the poll set are conns_[0 .. n); new ones are appended
    // after them, and closed ones are removed from the back down.
    const size_t n = fds.size() - 2;
    for (size_t i = n; i-- > 0;) {
      const short ev = fds[i + 2].revents;
      if (ev == 0) continue;
      Conn* conn = &conns_[i];
      bool keep;
      if (conn->answered && !conn->draining) {
        keep = (ev & (POLLERR | POLLNVAL)) == 0 && OnWritable(conn, after);
      } else {
        keep = (ev & POLLNVAL) == 0 && OnReadable(conn, after);
      }
      if (!keep) Close(i);
    }
    if (fds[1].revents != 0) Accept(after);
  }
  for (const Conn& conn : conns_) close(conn.fd);
  conns_.clear();
}

}  // namespace pulse
