/**
 * The README runs as a test, in the manner of umzug's test/examples.test.ts:
 * the shell blocks of "A first window, on the fake cloud" run in order in a
 * scratch directory (each line must exit as its `# exits N` says, else 0), the
 * "Two commands" are what .ci/run runs, and every command's flags in its
 * heading and the Common flags table are the flags its `--help` knows.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ROOT } from './helpers.js';

const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The text of the `## TITLE` section, up to the next `## `. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has a "## ${title}" section`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

function blocks(text: string, lang: string): string[] {
  return [...text.matchAll(new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```', 'gm'))].map((m) => m[1]!);
}

describe('the README', () => {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'leapfrog-readme-'));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  test('the tour on the fake cloud runs as written', () => {
    // The checkout as a reader has it, without touching it: its parts linked
    // into a scratch directory, and `leapfrog` on PATH as `npm link` puts it.
    for (const part of ['bin', 'chains', 'dist', 'envs', 'fixtures', 'node_modules', 'package.json']) symlinkSync(path.join(ROOT, part), path.join(scratch, part));
    mkdirSync(path.join(scratch, '.bin'));
    const shim = path.join(scratch, '.bin', 'leapfrog');
    writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${path.join(ROOT, 'bin', 'leapfrog.js')}" "$@"\n`);
    chmodSync(shim, 0o755);

    const tour = blocks(section('A first window, on the fake cloud'), 'sh');
    assert.ok(tour.length >= 3, 'the tour has its blocks');
    const lines = tour.flatMap((b) => b.split('\n')).filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
    assert.ok(lines.some((l) => /^leapfrog run\b/.test(l)) && lines.some((l) => /^leapfrog rollback\b/.test(l)));
    // One shell for the whole tour, so `C=…` carries; each line checked as it runs.
    const script = lines
      .map((line, i) => {
        const want = Number(/#\s*exits (\d+)/.exec(line)?.[1] ?? 0);
        return `${line}\nrc=$?; [ $rc -eq ${want} ] || { echo "README tour line ${i + 1} exited $rc, the README says ${want}: ${line.replace(/["$`\\]/g, '\\$&')}" >&2; exit 99; }`;
      })
      .join('\n');
    const r = spawnSync('bash', ['-c', script], {
      cwd: scratch,
      // LEAPFROG_STATE_DIR: the reader's own default state directory, kept in the scratch directory (as root the default is /var/lib/leapfrog).
      env: { PATH: `${path.join(scratch, '.bin')}:${process.env.PATH}`, HOME: scratch, LANG: 'C.UTF-8', LEAPFROG_STATE_DIR: path.join(scratch, 'state') },
      encoding: 'utf8',
      timeout: 240_000,
    });
    assert.equal(r.status, 0, `${r.stderr}\n${r.stdout.slice(-2000)}`);
    assert.match(r.stdout, /Nothing to run: the target is already at the end of chain fakecloud-juno-newton/);
    assert.match(r.stdout, /Would roll back to before the first hop; nothing was changed \(--dry-run\)/);
  });

  test('the two commands are the ones CI runs', () => {
    const two = blocks(section('Two commands'), 'sh').join('\n');
    const commands = two.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean).flatMap((l) => l.split('&&').map((c) => c.trim()));
    const ci = readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8').split('\n').map((l) => l.trim());
    for (const c of commands.filter((c) => c !== 'npm run demo')) assert.ok(ci.includes(c), `.ci/run runs \`${c}\` as the README says`);
    // And nothing else: what the tests need, npm test installs and starts itself (tools/test.ts).
    const extra = ci.filter((l) => l !== '' && !l.startsWith('#') && !/^(set -euo pipefail|cd "\$\(dirname "\$0"\)\/\.\.")$/.test(l) && !commands.includes(l));
    assert.deepEqual(extra, [], '.ci/run runs only the README\'s commands');
    assert.ok(commands.includes('npm test') && commands.includes('npm run demo'));
  });

  test("each command's flags in the README are the ones its --help knows", () => {
    const help = (args: string[]) => execFileSync(process.execPath, [path.join(ROOT, 'bin', 'leapfrog.js'), ...args, '--help'], { encoding: 'utf8' });
    const flagsOf = (text: string) => new Set([...text.matchAll(/(?<![\w-])--([a-z][a-z-]*)/g)].map((m) => m[1]!));
    const helpFlags = (text: string) => new Set([...text.matchAll(/^\s+(?:-\w, +)?--([a-z][a-z-]*)/gm)].map((m) => m[1]!).filter((f) => f !== 'help' && f !== 'version'));
    const common = new Set([...section('Commands').matchAll(/^\| `--([a-z][a-z-]*)[^|]*\|/gm)].flatMap((m) => [...flagsOf(m[0])]));
    assert.ok(common.has('state-dir') && common.has('offline'), 'the Common flags table is read');

    const headings = [...section('Commands').matchAll(/^### (.*)$/gm)].map((m) => m[1]!).filter((h) => h.startsWith('`leapfrog '));
    // A command may have several headings (envs: the cache, and build); its flags are their union.
    const documented = new Map<string, Set<string>>();
    for (const heading of headings) {
      const command = /`leapfrog ([a-z-]+)/.exec(heading)![1]!;
      documented.set(command, new Set([...(documented.get(command) ?? []), ...flagsOf(heading)]));
    }
    const problems: string[] = [];
    for (const [command, written] of documented) {
      const known = helpFlags(help([command]));
      // A boolean that is on by default is written as its negation (`--no-updates`), which yargs accepts for `--updates`.
      const shown = new Set([...written].map((f) => (f.startsWith('no-') && known.has(f.slice(3)) ? f.slice(3) : f)));
      for (const f of shown) if (!known.has(f)) problems.push(`README: \`leapfrog ${command}\` shows --${f}, which its --help does not know`);
      for (const f of known) if (!shown.has(f) && !common.has(f)) problems.push(`leapfrog ${command} --help has --${f}, which neither its README headings nor the Common flags table shows`);
    }
    assert.deepEqual(problems, []);
    const commands = [...help([]).matchAll(/^ {2}leapfrog ([a-z-]+)/gm)].map((m) => m[1]!);
    assert.equal(commands[0], 'check-migrations', 'the first thing to run is listed first');
    // Every command shows examples, and an example uses only flags its command knows, so they cannot rot.
    for (const command of new Set(commands)) {
      const text = help([command]);
      const examples = text.slice(text.indexOf('\nExamples:\n'));
      assert.ok(text.includes('\nExamples:\n') && examples.includes(`leapfrog ${command}`), `leapfrog ${command} --help has examples`);
      for (const f of flagsOf(examples)) assert.ok(helpFlags(text).has(f), `an example of leapfrog ${command} uses --${f}, which it does not know`);
    }
    assert.deepEqual([...documented.keys()].sort(), [...new Set(commands)].sort(), 'every command has its README heading');
  });
});
