// The endpoint's socket loop: one thread of its own, poll()-driven, every
// socket non-blocking. It reads request heads, hands complete ones to a
// responder and closes each connection after its answer. Bounded in what a
// client controls: 8 KiB of head (431), 2 s to send it (then closed), at most
// 32 connections (the oldest that has not sent a complete request is dropped
// to admit a new one). Nothing it does touches the heartbeat thread.
#pragma once

#include <pthread.h>

#include <cstdint>
#include <string>
#include <vector>

#include "http_request.h"

namespace pulse {

// Builds the whole HTTP response (head and body) for a complete request.
// Called on the server thread.
class Responder {
 public:
  virtual ~Responder() = default;
  virtual std::string Respond(const Request& request) = 0;
};

// "HTTP/1.1 <status>" with the usual headers and Connection: close; the body
// is left out for HEAD requests.
std::string HttpResponse(int status, const char* content_type, const std::string& body, bool head,
                         const char* extra_headers = "");

class Server {
 public:
  static constexpr int kMaxConnections = 32;
  static constexpr int64_t kRequestTimeoutNs = 2000000000;

  Server() = default;
  ~Server();  // stops and joins
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on `host` (an IPv4 or IPv6 literal; empty: every
  // interface, dual-stack where IPv6 exists) and `port` (0: a free one).
  // Returns 0 or an errno value, and *op names the call that failed.
  int Bind(const std::string& host, int port, const char** op);
  // "127.0.0.1:9464", "[::]:9464": the bound address.
  const std::string& address() const { return address_; }
  // Who answers complete requests; set before Start().
  void set_responder(Responder* responder) { responder_ = responder; }
  // Starts the thread. Returns 0 or an errno value.
  int Start();
  // Idempotent; returns after the thread exited and every socket is closed.
  void Stop();

 private:
  struct Conn {
    int fd = -1;
    int64_t opened_ns = 0;
    int64_t deadline_ns = 0;  // closed when reached
    std::string in;           // head bytes so far (at most kMaxRequestHead + 1)
    std::string out;          // the response, once answered
    size_t sent = 0;
    bool answered = false;    // a complete request (or a bad one) was answered
    bool draining = false;    // response sent; reading what the client still sends
    size_t drained = 0;
  };

  static void* ThreadMain(void* self);
  void Run();
  void Accept(int64_t now);
  // Reads what is there; answers once the head is complete or bad. False: close it.
  bool OnReadable(Conn* conn, int64_t now);
  // Writes what it can of the response. False: close it.
  bool OnWritable(Conn* conn, int64_t now);
  void Close(size_t index);

  Responder* responder_ = nullptr;  // written before the thread starts
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // Stop() writes a byte to wake_[1]
  std::string address_;
  pthread_t thread_{};
  bool started_ = false;  // owner's thread only
  bool stopped_ = false;  // owner's thread only
  std::vector<Conn> conns_;  // the server thread only (after Start)
  int64_t accept_paused_until_ns_ = 0;  // the server thread only
};

}  // namespace pulse
