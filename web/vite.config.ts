// Production build: hashed files under dist/assets (served immutable by stratad), no inline
// scripts or styles (stratad's Content-Security-Policy allows only 'self').
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  server: {
    // `npm run dev` against a local stratad: the API and the event stream are proxied.
    proxy: { "/api": "http://127.0.0.1:7480", "/healthz": "http://127.0.0.1:7480" },
  },
});
