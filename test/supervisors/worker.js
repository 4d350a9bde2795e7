'use strict';
// The worker the supervisor tests run, preloaded with
// celery-pulse-native/register. SUPERVISED_MODE says what it does:
//   busy    synchronous blocks of maxStall / 2, again and again: never stuck
//   stuck   works, then loops forever in crunchForever
//   expect  expectStall(2 x exitOnStall), then one block of 1.5 x exitOnStall
//   ready   pulse.ready() after a moment (systemd Type=notify), then idles
//   idle    nothing
const mode = process.env.SUPERVISED_MODE || 'busy';
const maxStall = Number(process.env.CELERY_PULSE_MAX_STALL || 1);
const exitOnStall = Number(process.env.CELERY_PULSE_EXIT_ON_STALL || maxStall);
const say = (text) => console.log(`supervised-worker: ${text} (pid ${process.pid}) at ${Date.now()}`);
const block = (ms) => {
  const end = Date.now() + ms;
  while (Date.now() < end);
};
function crunchForever() {
  for (;;);
}
const registered = () => require('celery-pulse-native/register').pulse;

say(`${mode} started`);
if (mode === 'busy') {
  (function busy() {
    block(maxStall * 500);
    setTimeout(busy, 10);
  })();
} else if (mode === 'stuck') {
  setTimeout(() => {
    say('stuck');
    crunchForever();
  }, Number(process.env.SUPERVISED_STUCK_AFTER_MS || 2000));
} else if (mode === 'expect') {
  setTimeout(() => {
    registered().expectStall(exitOnStall * 2, 'a long step');
    block(exitOnStall * 1500);
    say('long step done');
  }, 1000);
} else if (mode === 'ready') {
  setTimeout(() => {
    registered().ready();
    say('ready');
  }, 500);
}
setInterval(() => {}, 1 << 30);
