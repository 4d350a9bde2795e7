{
  "targets": [
    {
      "target_name": "celery_pulse",
      "sources": ["native/addon.cc", "native/diagnose.cc", "native/endpoint.cc", "native/heartbeat.cc",
                  "native/http_request.cc", "native/json_value.cc", "native/livez.cc", "native/metrics.cc",
                  "native/native_stack.cc", "native/outside_js.cc", "native/pulse_file.cc", "native/sd_notify.cc",
                  "native/server.cc", "native/waiting_for.cc", "native/watchdog.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "PULSE_SOURCE_DIGEST=<!(node scripts/digest.js)"
      ],
      "cflags_cc": ["-std=c++17", "-fvisibility=hidden", "-fstack-protector-strong", "-Wall", "-Wextra"],
      "ldflags": ["-Wl,--exclude-libs,ALL", "-Wl,-z,nodelete"]
    }
  ]
}
