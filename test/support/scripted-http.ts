export { type Reply, ScriptedHttpSink, type SeenRequest } from '../../src/plugin/testing.ts';
