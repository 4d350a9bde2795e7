// What the pulse's endpoint answers: /livez, /metrics and /status, built on
// the server thread from the heartbeat's atomics and the file, never from
// JavaScript (so it stays true while the event loop is stuck).
#pragma once

#include <cstdint>
#include <string>

#include "server.h"

namespace pulse {

class Heartbeat;

struct EndpointConfig {
  std::string file;
  double interval_seconds = 0;  // as given (check's default max-age is twice it)
  double max_stall_seconds = 0;  // +Inf: the gate is off
  std::string version;        // the package's
  std::string strategy;       // "native"
  std::string runtime;        // "node 22.12.0", "bun 1.1.0", ...
};

class PulseEndpoint : public Responder {
 public:
  PulseEndpoint(const Heartbeat* heartbeat, EndpointConfig config)
      : heartbeat_(heartbeat), config_(std::move(config)) {}
  std::string Respond(const Request& request) override;
  // The exposition text (also pulse.metrics(), on the JS thread).
  std::string Metrics() const;

 private:
  const Heartbeat* const heartbeat_;
  const EndpointConfig config_;
};

}  // namespace pulse
