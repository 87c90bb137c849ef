// Copies the browser builds of the pinned front-end libraries from node_modules/ into
// ../static/vendor/<folder>/ and writes ../static/vendor/MANIFEST.json (package, version from
// package-lock.json, file, sha256). Run through `make vendor` (npm ci + this script).
//
// The copied files are committed, so neither the Python package nor the PyInstaller build ever
// needs npm or a CDN. Files are copied byte for byte (no rewriting), so each one can be compared
// with the published npm release; tests/foundation/test_vendor.py checks the manifest against the
// lock and the files against the manifest.
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendorDir = resolve(here, "..", "static", "vendor");

// npm package -> folder under static/vendor/ (short, stable URLs: vendor/htmx/htmx.min.js)
const FOLDERS = { bootstrap: "bootstrap", "bootstrap-icons": "bootstrap-icons", "chart.js": "chartjs", "htmx.org": "htmx", "swagger-ui-dist": "swagger-ui" };

// npm package -> [source path inside the package, destination path inside static/vendor/<folder>/]
const FILES = {
  bootstrap: [
    ["dist/css/bootstrap.min.css", "bootstrap.min.css"],
    ["dist/js/bootstrap.bundle.min.js", "bootstrap.bundle.min.js"],
    ["LICENSE", "LICENSE"],
  ],
  "bootstrap-icons": [
    // The stylesheet refers to fonts/… relatively, so keep that layout.
    ["font/bootstrap-icons.min.css", "bootstrap-icons.min.css"],
    ["font/fonts/bootstrap-icons.woff2", "fonts/bootstrap-icons.woff2"],
    ["font/fonts/bootstrap-icons.woff", "fonts/bootstrap-icons.woff"],
    ["LICENSE", "LICENSE"],
  ],
  "chart.js": [
    ["dist/chart.umd.min.js", "chart.umd.min.js"],
    ["LICENSE.md", "LICENSE.md"],
  ],
  "htmx.org": [
    ["dist/htmx.min.js", "htmx.min.js"],
    ["LICENSE", "LICENSE"],
  ],
  // The API docs page (/api/v1/docs) renders the OpenAPI document with it.
  "swagger-ui-dist": [
    ["swagger-ui-bundle.js", "swagger-ui-bundle.js"],
    ["swagger-ui.css", "swagger-ui.css"],
    ["LICENSE", "LICENSE"],
    ["NOTICE", "NOTICE"],
  ],
};

function fail(message) {
  console.error(`copy-vendor: ${message}`);
  process.exit(1);
}

const lock = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));
const declared = JSON.parse(readFileSync(join(here, "package.json"), "utf8")).dependencies;

const manifest = { generated_by: "frontend/copy-vendor.mjs", packages: {} };
for (const [pkg, files] of Object.entries(FILES)) {
  const locked = lock.packages?.[`node_modules/${pkg}`];
  if (!locked) fail(`${pkg} is not in package-lock.json`);
  if (declared[pkg] !== locked.version) {
    fail(`${pkg}: package.json pins ${declared[pkg]} but the lock has ${locked.version} (run npm install)`);
  }
  const pkgDir = join(here, "node_modules", pkg);
  const installed = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")).version;
  if (installed !== locked.version) {
    fail(`${pkg}: node_modules has ${installed}, the lock has ${locked.version} (run npm ci)`);
  }

  const folder = FOLDERS[pkg];
  const outDir = join(vendorDir, folder);
  rmSync(outDir, { recursive: true, force: true }); // no stale files from an older version
  const entries = [];
  for (const [src, dest] of files) {
    const from = join(pkgDir, src);
    if (!existsSync(from)) fail(`${pkg}: ${src} not found in the package`);
    const to = join(outDir, dest);
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(from, to);
    const sha256 = createHash("sha256").update(readFileSync(to)).digest("hex");
    entries.push({ file: `${folder}/${dest}`, source: src, sha256 });
  }
  manifest.packages[pkg] = { version: locked.version, integrity: locked.integrity, files: entries };
  console.log(`vendored ${pkg}@${locked.version} (${entries.length} files)`);
}

writeFileSync(join(vendorDir, "MANIFEST.json"), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`wrote ${join(vendorDir, "MANIFEST.json")}`);
