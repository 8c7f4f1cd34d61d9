// @vitest-environment jsdom
// The shared grid input (keys move a clamped cursor, Enter / click activate, widget keys first)
// and the shared DOM helpers, on plain elements.
import { describe, expect, it } from 'vitest';
import { attachGrid, sameCell, type Cell, type Cursor, type GridHandlers } from '../src/lib/grid';
import { placeColumn, placeRow, table, toggleButton, widgetHeader } from '../src/lib/dom';

function setup(extra: Partial<GridHandlers> = {}) {
  const canvas = document.createElement('canvas');
  const cursor: Cursor = { cell: [0, 0] };
  const log: string[] = [];
  attachGrid(canvas, cursor, {
    geometry: () => ({ rows: 2, cols: 3, cell: 10, gap: 2 }),
    hover: cell => log.push(`hover ${cell}`),
    activate: (cell, ev) => log.push(`activate ${cell} ${ev.type}`),
    move: cell => log.push(`move ${cell}`),
    ...extra
  });
  const key = (k: string) => {
    const ev = new KeyboardEvent('keydown', { key: k, cancelable: true });
    canvas.dispatchEvent(ev);
    return ev.defaultPrevented;
  };
  const mouse = (type: string, x: number, y: number) =>
    canvas.dispatchEvent(new MouseEvent(type, { clientX: x, clientY: y }));
  return { canvas, cursor, log, key, mouse };
}

describe('grid input', () => {
  it('moves a clamped cursor with the keys and activates it with Enter or Space', () => {
    const { cursor, log, key } = setup();
    expect(key('ArrowRight')).toBe(true);
    expect(key('End')).toBe(true);
    expect(key('ArrowDown')).toBe(true);
    expect(key('ArrowDown')).toBe(true); // clamped, still consumed
    expect(cursor.cell).toEqual([1, 2]);
    expect(key('Enter')).toBe(true);
    expect(key(' ')).toBe(true);
    expect(key('x')).toBe(false);
    expect(log).toEqual([
      'move 0,1',
      'move 0,2',
      'move 1,2',
      'move 1,2',
      'activate 1,2 keydown',
      'activate 1,2 keydown'
    ]);
  });

  it('hit-tests the pointer, skipping gaps, and puts the cursor on a clicked cell', () => {
    const { cursor, log, mouse } = setup();
    mouse('mousemove', 15, 5);
    mouse('mousemove', 9, 5); // the gap after column 0
    mouse('mouseleave', 0, 0);
    mouse('click', 25, 15);
    mouse('click', 100, 100); // outside: nothing
    expect(cursor.cell).toEqual([1, 2]);
    expect(log).toEqual(['hover 0,1', 'hover null', 'hover null', 'activate 1,2 click']);
  });

  it('tries the widget keys first and leaves Enter alone without an activate handler', () => {
    const seen: string[] = [];
    const { key, log } = setup({
      activate: undefined,
      key: ev => (ev.key === 'Escape' ? (seen.push('escape'), true) : false)
    });
    expect(key('Escape')).toBe(true);
    expect(key('Enter')).toBe(false);
    expect(seen).toEqual(['escape']);
    expect(log).toEqual([]);
  });

  it('compares cells', () => {
    const a: Cell = [1, 2];
    expect(sameCell(a, [1, 2])).toBe(true);
    expect(sameCell(a, [2, 1])).toBe(false);
    expect(sameCell(null, null)).toBe(true);
    expect(sameCell(a, null)).toBe(false);
  });
});

describe('DOM helpers', () => {
  it('build tables with optional row headers, as text', () => {
    const t = table('x', ['a', '<b>'], [['1', '2']], true);
    expect(t.outerHTML).toBe(
      '<table class="x"><tr><th>a</th><th>&lt;b&gt;</th></tr><tr><th>1</th><td>2</td></tr></table>'
    );
  });
  it('build a header, toggles and placed labels', () => {
    const button = toggleButton('w-button', 'Go');
    const { header, title } = widgetHeader('w', [button]);
    expect(header.outerHTML).toBe(
      '<div class="w-header"><div class="w-title"></div><div class="w-controls">' +
        '<button class="w-button" type="button" aria-pressed="false">Go</button></div></div>'
    );
    expect(title.className).toBe('w-title');
    const row = placeRow(document.createElement('span'), 2, 10);
    expect(row.getAttribute('style')).toBe('top: 20px; height: 10px; line-height: 10px;');
    const col = placeColumn(document.createElement('span'), 2, 10);
    expect(col.getAttribute('style')).toBe('left: 25px;');
  });
});
