import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { argvModel, checkTemplate, configModel } from '../src/chain/template.js';
import type { ProjectDef } from '../src/chain/types.js';
import { fakeCloud, leapfrog, tempDir } from './helpers.js';

/**
 * Chain templates are untrusted input: a template can name the data model
 * (db.<database>.<field>, config['<file>'], project, release) and nothing
 * else; it cannot run code, read files or loop. Every attack here is refused
 * at load (exit 2, file:line), with nothing run and nothing recorded.
 */

const project: ProjectDef = {
  name: 'compute',
  databases: { main: 'compute', api: 'compute_api' },
  version: {},
  start: {},
  config: { 'compute.conf': '' },
  blockers: [],
};

describe('template syntax users write', () => {
  test('the documented forms are accepted, on every branch', () => {
    for (const t of [
      '{{ db.main.url }}',
      "{{ config['compute.conf'] }}",
      '{{ config["compute.conf"] }}',
      "{{ db['api'].name }}",
      '{% if db.main.socket %}socket={{ db.main.socket }}{% else %}host={{ db.main.host }}{% endif %}',
      '{% unless db.main.user == "" %}x{% endunless %}',
      "{{ db.main.url | append: '?charset=utf8' }}",
      '{{ project }}-{{ release }}.log',
      'no template at all',
    ]) {
      assert.deepEqual(checkTemplate(t, argvModel(project)), [], t);
    }
    assert.deepEqual(checkTemplate('connection = {{ db.main.url }}\n{% if db.main.password %}pw={{ db.main.password }}{% endif %}', configModel(project)), []);
  });

  test('a mistake on a branch a render would not take is still found, with its row', () => {
    const p = checkTemplate('a\n{% if db.main.socket %}\n{{ db.main.sockt }}\n{% endif %}', configModel(project));
    assert.equal(p.length, 1);
    assert.equal(p[0]!.row, 3);
    assert.match(p[0]!.message, /db\.main\.sockt is not something templates can use: db\.main offers url, .*socket/);
  });
});

/** Each of these, if it ran, would create `marker` (or read a file, or loop). */
function attacks(marker: string): { name: string; template: string; why: RegExp }[] {
  const js = `process.mainModule.require('fs').writeFileSync('${marker}', 'pwned')`;
  return [
    { name: 'nunjucks range.constructor', template: `{{ range.constructor("${js}")() }}`, why: /invalid range syntax|unexpected token|not closed|is not something/ },
    { name: 'nunjucks cycler.constructor', template: `{{ cycler.constructor("${js}")() }}`, why: /./ },
    { name: 'nunjucks joiner via set', template: `{% set x = joiner.constructor("${js}")() %}`, why: /tag "set" is not allowed/ },
    { name: 'constructor through the data', template: '{{ db.main.url.constructor.constructor }}', why: /db\.main\.url\.constructor: db\.main\.url is a plain value/ },
    { name: 'prototype key', template: "{{ db['__proto__'].polluted }}", why: /db\.__proto__ is not something templates can use/ },
    { name: 'Liquid include reads a file', template: "{% include '/etc/passwd' %}", why: /tag "include" is not allowed here/ },
    { name: 'Liquid render reads a file', template: "{% render '/etc/passwd' %}", why: /tag "render" is not allowed here/ },
    { name: 'Liquid layout', template: "{% layout '/etc/passwd' %}x", why: /tag "layout" is not allowed here/ },
    { name: 'Liquid liquid-tag smuggles include', template: "{% liquid include '/etc/passwd' %}", why: /tag "liquid" is not allowed here/ },
    { name: 'Liquid loop bomb', template: '{% for i in (1..100000000) %}xxxxxxxx{% endfor %}', why: /tag "for" is not allowed here/ },
    { name: 'Liquid assign', template: '{% assign x = db.main %}{{ x.password }}', why: /tag "assign" is not allowed here/ },
    { name: 'unknown filter', template: '{{ db.main.url | shell }}', why: /undefined filter: shell/ },
    { name: 'a whole object', template: '{{ db.main }}', why: /db\.main is not a value; name one of its fields/ },
    { name: 'indirect lookup', template: '{{ db[project].url }}', why: /looks a name up through another expression/ },
    { name: 'password on the command line', template: '{{ db.main.password }}', why: /the password is not available to command lines/ },
  ];
}

describe('template injection is refused at load: exit 2, file:line, nothing run', () => {
  test('argv and config templates, through plan, check-migrations and run', async () => {
    const cloud = await fakeCloud();
    const dir = tempDir('tpl');
    const marker = path.join(dir, 'pwned');
    const before = await cloud.scalar('compute', 'SELECT MAX(version) FROM migrate_version');
    for (const a of attacks(marker)) {
      const inArgv = cloud.variant('argv', (c) => {
        c.releases[0].steps[1].sync.push(a.template);
      });
      for (const command of ['plan', 'run', 'check-migrations']) {
        const json = command === 'check-migrations' ? ['--format', 'json'] : [];
        const r = await leapfrog([command, ...cloud.args(inArgv), ...json]);
        // check-migrations reports on stdout, as JSON here so lines are not wrapped.
        const out = json.length > 0 ? (JSON.parse(r.stdout) as { checks: { details: string }[] }).checks.map((c) => c.details).join('\n') : r.stderr;
        assert.equal(r.exitCode, 2, `${a.name} via ${command}: ${out}`);
        assert.match(out, /argv\.yaml:\d+:\d+: releases\[0\]\.steps\[1\]\.sync\[\d+\]: template /, a.name);
        assert.match(out, a.why, a.name);
        assert.doesNotMatch(out, /\n\s+at /, `${a.name}: no stack`);
      }
      if (a.name === 'password on the command line') continue; // allowed in config files (mode 0600)
      const inConfig = cloud.variant('config', (c) => {
        c.projects.compute.config['compute.conf'] += `x = ${a.template}\n`;
      });
      const r = await leapfrog(['run', ...cloud.args(inConfig)]);
      assert.equal(r.exitCode, 2, `${a.name} in a config: ${r.stderr}`);
      // The line is the config's own line inside the block scalar.
      const line = Number(/config\.yaml:(\d+):1: projects\.compute\.config\["compute\.conf"\]: template: /.exec(r.stderr)?.[1]);
      assert.ok(line > 0, `${a.name}: ${r.stderr}`);
      assert.equal(readFileSync(inConfig, 'utf8').split('\n')[line - 1]!.trim(), `x = ${a.template}`, a.name);
      assert.match(r.stderr, a.why, a.name);
    }
    assert.equal(existsSync(marker), false, 'a template ran code');
    assert.equal(existsSync(cloud.state), false, 'nothing recorded: no state directory, no ledger');
    assert.equal(await cloud.scalar('compute', 'SELECT MAX(version) FROM migrate_version'), before);
  });
});
