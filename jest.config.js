/** Test files run one at a time (see maxWorkers). */
module.exports = {
  testEnvironment: '<rootDir>/test/helpers/environment.js',
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        // The gateway is a NestJS application: its decorators need the legacy form and design-time metadata.
        jsc: { parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true }, target: 'es2022' },
        module: { type: 'commonjs' },
      },
    ],
    // NestJS 12 ships ES modules only; jest (before Node 24.9) cannot require() them, so they are compiled like our sources.
    '/node_modules/(@nestjs|eventsource-parser)/.+\\.js$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(@nestjs|eventsource-parser)/)'],
  // The package's own entries, as services and tests import them (`nodus`, `nodus/serve`), from the sources.
  moduleNameMapper: { '^nodus$': '<rootDir>/runtime/index.ts', '^nodus/(serve|serving|tasks|jobs)$': '<rootDir>/$1/index.ts', '^nodus/(state|metrics)$': '<rootDir>/runtime/$1.ts' },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  testTimeout: 60_000,
  // One test file at a time: integration tests start real clusters (and the chaos suite a dozen processes), and
  // on a 2-core machine two at once starve each other's heartbeats and timers.
  maxWorkers: 1,
  // In one process, a test's leftover socket or timer (redis-parser keeps one for a while) would keep jest alive.
  forceExit: true,
};
