'use strict';
// The ways of keeping a healthcheck file fresh that the benchmarks compare:
// this package's two strategies, and the heartbeat a user would otherwise
// write (setInterval + fs.utimesSync). Each start() returns {beats(), stop()}.
const fs = require('node:fs');
const path = require('node:path');

const PKG = path.join(__dirname, '..', '..');

function packageContender(strategy) {
  return {
    start({ file, interval, maxStall, removeOnStop }) {
      const options = { file, interval, strategy };
      if (maxStall !== undefined) options.maxStall = maxStall;
      if (removeOnStop !== undefined) options.removeOnStop = removeOnStop;
      const pulse = require(PKG).start(options);
      return {
        beats: () => pulse.status().beats,
        status: () => pulse.status(),
        stop: () => pulse.stop(),
      };
    },
  };
}

const CONTENDERS = {
  native: {
    label: 'native',
    ...packageContender('native'),
  },
  worker: {
    label: 'worker',
    ...packageContender('worker'),
  },
  // The usual hand-written heartbeat: a timer on the event loop touching the
  // file, so it beats only while the loop is free.
  plain: {
    label: 'setInterval + fs.utimesSync',
    start({ file, interval, removeOnStop }) {
      fs.writeFileSync(file, `${process.pid}\n`);
      let beats = 1;
      const timer = setInterval(() => {
        const now = new Date();
        fs.utimesSync(file, now, now);
        beats++;
      }, interval * 1000);
      timer.unref();
      return {
        beats: () => beats,
        status: () => ({ beats }),
        stop() {
          clearInterval(timer);
          if (removeOnStop) fs.rmSync(file, { force: true });
        },
      };
    },
  },
  // Nothing at all: the A in A/A and A/B comparisons.
  none: {
    label: 'none',
    start() {
      return { beats: () => 0, status: () => ({ beats: 0 }), stop() {} };
    },
  },
};

function contender(name) {
  const c = CONTENDERS[name];
  if (!c) throw new Error(`unknown contender ${name}`);
  return c;
}

module.exports = { PKG, CONTENDERS, contender };
