export { freePort, settlesWithin, waitFor } from '../../src/plugin/testing.ts';
