/** Test files run one at a time (see maxWorkers). */
module.exports = {
  testEnvironment: '<rootDir>/test/helpers/environment.js',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  testTimeout: 60_000,
  // One test file at a time: integration tests start real clusters (and the chaos suite a dozen processes), and
  // on a 2-core machine two at once starve each other's heartbeats and timers.
  maxWorkers: 1,
  // In one process, a test's leftover socket or timer (redis-parser keeps one for a while) would keep jest alive.
  forceExit: true,
};
