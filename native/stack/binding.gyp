# The stack capture addon, built once per Node ABI against that Node's own
# headers by scripts/prebuild-stack.sh (node-gyp --nodedir=<package>), apart
# from the core's binding.gyp (whose build/ it never touches: the script
# builds in a copy of native/stack under .cache/).
# No -std flag: each Node's common.gypi sets the one its V8 headers need.
# -Wno-cast-function-type: NODE_MODULE_INIT's own cast in node.h warns.
{
  "targets": [
    {
      "target_name": "pulse_stack",
      "sources": ["stack.cc"],
      "defines": ["PULSE_STACK_DIGEST=<!(node ../../scripts/stack-digest.js)"],
      "cflags_cc": ["-fvisibility=hidden", "-fstack-protector-strong", "-Wall", "-Wextra",
                    "-Wno-cast-function-type"],
      "ldflags": ["-Wl,--exclude-libs,ALL", "-Wl,-z,nodelete"]
    }
  ]
}
