/**
 * The browser test's page script: the React form example, plus what the test wants to know about the browser.
 * Bundled by server.ts with esbuild (platform browser).
 */
export { mount } from '../../../examples/react-form/main';

// Pages on http://127.0.0.1 count as a secure context in Chromium (loopback is "potentially trustworthy"), so
// crypto.randomUUID exists there; on a LAN address over plain http it does not and the link falls back to
// crypto.getRandomValues. The test records which case it ran in.
document.documentElement.dataset.secureContext = String(window.isSecureContext);
document.documentElement.dataset.randomUuid = String(typeof crypto.randomUUID === 'function');
