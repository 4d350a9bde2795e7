'use strict';
// Preloaded (NODE_OPTIONS=--require) into every Node process of an emulated
// matrix row. There is no binfmt_misc handler for foreign binaries here, so
// spawning process.execPath (the arm64 node) directly would fail with
// ENOEXEC; the test runner and the tests spawn the launcher instead, which
// starts node under qemu.
if (process.env.PULSE_MATRIX_LAUNCHER) process.execPath = process.env.PULSE_MATRIX_LAUNCHER;
