/**
 * The test build of the native addon (native/binding.gyp target
 * tunnelbyte_io_test): the production exports plus the test-only ones
 * (tunSegmentForTest, tunCoalesceForTest, udpPlanForTest, udpSplitForTest,
 * native/src/test-exports.cc), which the production addon does not carry.
 */
import { fileURLToPath } from 'node:url';
import { loadBinding, type NativeBinding } from '../../src/io/linux/binding.js';

/** Where `npm run build` puts it, from dist/test/support/. */
export const TEST_BINDING_PATH = fileURLToPath(new URL('../../../native/build/Release/tunnelbyte_io_test.node', import.meta.url));

export function testBinding(): NativeBinding {
  return loadBinding(TEST_BINDING_PATH);
}
