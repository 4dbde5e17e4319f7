// Adds lock entries for platform-specific optional packages (other OSes' binaries of
// biome, msgpackr-extract, …) that `npm install` left out because the registry it used
// did not serve them. `npm ci` insists every optional dependency has an entry; on this
// platform it skips them by their os/cpu fields without fetching. Run after `npm install`:
//   npm install && node scripts/complete-lock.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const PLATFORM =
  /(darwin|linux|win32|android|freebsd|openbsd|netbsd|sunos|aix)-(x64|arm64|arm|ia32|loong64|mips64el|ppc64|riscv64|s390x)(-musl|-gnu|-msvc)?$/;

const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const packages = lock.packages;
let added = 0;
for (const meta of Object.values(packages)) {
  for (const [name, range] of Object.entries(meta.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (packages[key]) continue;
    const m = PLATFORM.exec(name);
    if (!m) {
      console.error(`complete-lock: cannot tell the platform of ${name}; left out`);
      continue;
    }
    const entry = { version: range.replace(/^[\^~=]/, ''), cpu: [m[2]], os: [m[1]], optional: true };
    if (meta.dev) entry.dev = true;
    if (m[3] === '-musl') entry.libc = ['musl'];
    if (m[3] === '-gnu') entry.libc = ['glibc'];
    packages[key] = entry;
    added += 1;
  }
}
writeFileSync('package-lock.json', `${JSON.stringify(lock, null, 2)}\n`);
console.log(`complete-lock: ${added} entries added`);
