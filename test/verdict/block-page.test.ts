import { describe, expect, it } from 'vitest';
import { escapeHtml, renderBlockPage, type BlockPageValues } from '../../src/verdict/block-page.js';

const values: BlockPageValues = {
  threat: 'Eicar',
  url: 'http://example.com/a.exe',
  transaction_id: 'tx-1',
  service: 'avscan',
  reason: 'infected: Eicar',
};

describe('escapeHtml', () => {
  const rows: [raw: string, escaped: string][] = [
    ['plain', 'plain'],
    ['&', '&amp;'],
    ['<', '&lt;'],
    ['>', '&gt;'],
    ['"', '&quot;'],
    ["'", '&#39;'],
    ['<script>alert("x")</script>', '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'],
    ['&amp;', '&amp;amp;'],
    ['Über 😈', 'Über 😈'],
  ];
  it.each(rows)('%s', (raw, escaped) => {
    expect(escapeHtml(raw)).toBe(escaped);
  });
});

describe('renderBlockPage', () => {
  const rows: [label: string, template: string, overrides: Partial<BlockPageValues>, expected: string][] = [
    ['every placeholder', '{{threat}}|{{url}}|{{transaction_id}}|{{service}}|{{reason}}', {}, 'Eicar|http://example.com/a.exe|tx-1|avscan|infected: Eicar'],
    ['repeated placeholder', '{{threat}} {{threat}}', {}, 'Eicar Eicar'],
    ['spaces inside braces', '{{ threat }}', {}, 'Eicar'],
    ['unknown placeholder left as is', '{{nope}} {{threat}}', {}, '{{nope}} Eicar'],
    ['prototype names are not placeholders', '{{constructor}}{{__proto__}}', {}, '{{constructor}}{{__proto__}}'],
    ['single braces untouched', '{threat}', {}, '{threat}'],
    [
      'script in URL escaped',
      '<p>{{url}}</p>',
      { url: 'http://x/<script>alert(1)</script>' },
      '<p>http://x/&lt;script&gt;alert(1)&lt;/script&gt;</p>',
    ],
    ['attribute breakout escaped', '<a href="{{url}}">', { url: 'x" onmouseover="alert(1)' }, '<a href="x&quot; onmouseover=&quot;alert(1)">'],
    ["single-quote attribute breakout escaped", "<a href='{{url}}'>", { url: "x' onclick='y" }, "<a href='x&#39; onclick=&#39;y'>"],
    ['value containing a placeholder is not expanded again', '{{url}}', { url: '/{{reason}}' }, '/{{reason}}'],
  ];
  it.each(rows)('%s', (_label, template, overrides, expected) => {
    expect(renderBlockPage(template, { ...values, ...overrides })).toBe(expected);
  });
});
