/** Unit tests run in parallel; integration tests start real clusters, so they run a few at a time. */
module.exports = {
  testEnvironment: '<rootDir>/test/helpers/environment.js',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  testTimeout: 60_000,
  maxWorkers: 2,
};
