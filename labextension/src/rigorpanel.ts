/**
 * The Rigor sidebar panel: the findings for the notebook in focus, grouped by severity then
 * rule. A row jumps to its cell; "Ignore" records a reason in the cell's metadata; each
 * finding links to its rule's page, served by the Jupyter server, in a new tab.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { h, setTabData, wrappable } from './dom';
import { IFinding } from './protocol';
import { RigorLink } from './rigor';
import { SessionPanel } from './sessionpanel';
import { NotebookSession, Sessions } from './sessions';

export const RIGOR_PANEL_ID = 'interp-magics-rigor';

/**
 * Return the address of a rule's page on the Jupyter server (`<baseUrl>/interp-magics/rules/ID`),
 * or null when `rule` is not a rule id: findings come from the server, but are checked anyway.
 */
export function rulePageUrl(baseUrl: string, rule: string): string | null {
  if (!/^[A-Z]{3}\d{3}$/.test(rule)) {
    return null;
  }
  const path = URLExt.join(baseUrl, 'interp-magics', 'rules', encodeURIComponent(rule));
  const url = new URL(path, window.location.href);
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
}

export class RigorPanel extends SessionPanel {
  constructor(sessions: Sessions) {
    super({
      id: RIGOR_PANEL_ID,
      className: 'im-rigor-panel',
      label: 'Rigor',
      caption: 'Rigor findings'
    });
    this.follow(sessions);
  }

  protected onSessionChanged(): void {
    this._closeForm();
    this._selected = null;
  }

  protected render(): void {
    // Replacing the panel's children detaches the reason form, which drops its focus: note it,
    // and give it back in the same task, so no keystroke lands elsewhere in between.
    const typing = this._form !== null && this._form.contains(document.activeElement);
    const session = this._session;
    const rigor = session?.rigor;
    const open = rigor ? rigor.openCount : 0;
    // A check that timed out, was refused or failed says nothing about the notebook: show no
    // number then, rather than a green zero that reads as a clean notebook.
    const known = !rigor || rigor.state === 'ready' || rigor.state === 'checking';
    // The count rides on the side tab as data-im-count (CSS draws the badge) and in the header.
    setTabData(this, 'im-count', known ? String(open) : '0');
    this.title.caption = !rigor
      ? 'Rigor findings'
      : known
        ? `Rigor findings: ${open} open`
        : 'Rigor findings: not checked';
    if (!this.isVisible && this.node.childElementCount) {
      return;
    }
    const count = known
      ? [
          h('span', { className: 'im-count', 'data-count': open }, String(open)),
          h('span', { className: 'im-count-label' }, open === 1 ? 'open finding' : 'open findings')
        ]
      : [
          h('span', { className: 'im-count', 'data-count': 'unknown' }, '–'),
          h('span', { className: 'im-count-label' }, 'not checked')
        ];
    const content = session && rigor ? this._content(session, rigor) : null;
    this.fill('Rigor', count, content, 'Open a notebook to check it.');
    if (this._form?.isConnected && (typing || this._focusForm)) {
      this._form.querySelector('input')?.focus();
      this._focusForm = false;
    }
  }

  private _content(session: NotebookSession, rigor: RigorLink): HTMLElement[] {
    const content = [
      h(
        'p',
        { className: 'im-state', 'data-state': rigor.state },
        rigor.state === 'checking' && rigor.findings.length === 0
          ? 'checking…'
          : rigor.state === 'ready' || rigor.state === 'checking'
            ? rigor.summary || 'no findings'
            : rigor.message
      )
    ];
    if (rigor.message && (rigor.state === 'ready' || rigor.state === 'checking')) {
      content.push(h('p', { className: 'im-note' }, rigor.message));
    }
    content.push(this._list(session, rigor.findings));
    return content;
  }

  private _list(session: NotebookSession, findings: IFinding[]): HTMLElement {
    const list = h('div', { className: 'im-findings', role: 'list' });
    for (const severity of ['error', 'warning'] as const) {
      const ofSeverity = findings.filter(f => f.severity === severity);
      if (!ofSeverity.length) {
        continue;
      }
      const rules = [...new Set(ofSeverity.map(f => f.rule))].sort();
      list.append(
        h(
          'h3',
          { className: `im-severity im-${severity}` },
          `${severity === 'error' ? 'Errors' : 'Warnings'} (${ofSeverity.filter(f => !f.suppressed).length})`
        )
      );
      for (const rule of rules) {
        const ofRule = ofSeverity.filter(f => f.rule === rule);
        list.append(
          h(
            'div',
            { className: 'im-rule', 'data-rule-group': rule },
            h('span', { className: 'im-rule-id' }, rule),
            ' ',
            h('span', { className: 'im-rule-title' }, wrappable(ofRule[0].title ?? ''))
          )
        );
        for (const finding of ofRule) {
          list.append(this._row(session, finding));
        }
      }
    }
    return list;
  }

  private _row(session: NotebookSession, f: IFinding): HTMLElement {
    const rigor = session.rigor;
    const key = `${f.rule}@${f.cell_id}:${f.line}`;
    const selected = this._selected === key;
    // The finding last jumped to stays marked (aria-current) after focus moves to its cell.
    const jump = () => {
      this._selected = key;
      for (const other of this.node.querySelectorAll('.im-finding.im-selected')) {
        other.classList.remove('im-selected');
        other.removeAttribute('aria-current');
      }
      row.classList.add('im-selected');
      row.setAttribute('aria-current', 'true');
      void rigor.jump(f);
    };
    const row = h(
      'div',
      {
        className:
          `im-finding im-${f.severity}` +
          (f.suppressed ? ' im-suppressed' : '') +
          (selected ? ' im-selected' : ''),
        role: 'listitem',
        tabindex: 0,
        'aria-current': selected ? 'true' : undefined,
        'data-rule': f.rule,
        'data-cell-id': f.cell_id,
        'data-suppressed': f.suppressed ? 'true' : 'false',
        title: `Go to cell ${f.cell_index}, line ${f.line}`,
        onclick: (event: Event) => {
          if (!(event.target as HTMLElement).closest('a, button, input, form')) {
            jump();
          }
        },
        onkeydown: (event: Event) => {
          const e = event as KeyboardEvent;
          if (e.key === 'Enter' && e.target === row) {
            jump();
          }
        }
      },
      h(
        'div',
        { className: 'im-where' },
        `cell ${f.cell_index}, line ${f.line}`,
        f.execution_count !== null ? ` · In[${f.execution_count}]` : '',
        f.source === 'ledger' ? ' · from the kernel’s ledger' : ''
      ),
      h('div', { className: 'im-message' }, wrappable(f.message)),
      h('div', { className: 'im-fix' }, h('b', {}, 'Fix: '), wrappable(f.fix)),
      h(
        'div',
        { className: 'im-reference' },
        h('b', {}, 'See: '),
        wrappable(f.reference),
        ' ',
        this._pageLink(f)
      )
    );
    if (f.suppressed) {
      row.append(
        h('div', { className: 'im-reason' }, h('b', {}, 'Ignored: '), wrappable(f.reason))
      );
      if (rigor.ignoredInMetadata(f)) {
        row.append(
          h(
            'button',
            {
              className: 'im-button im-unignore',
              type: 'button',
              onclick: () => rigor.unignore(f)
            },
            'Un-ignore'
          )
        );
      }
    } else if (this._editing === key) {
      // The same form element survives re-renders (a check may finish while the user types),
      // so what they typed, the caret and the validation message stay.
      if (!this._form || this._formKey !== key) {
        this._form = this._reasonForm(f);
        this._formKey = key;
        this._focusForm = true;
      }
      row.append(this._form);
    } else {
      row.append(
        h(
          'button',
          {
            className: 'im-button im-ignore',
            type: 'button',
            onclick: () => {
              this._closeForm();
              this._editing = key;
              this.render();
            }
          },
          'Ignore with reason…'
        )
      );
    }
    return row;
  }

  /** Return a link to the page of the finding's rule, opening in a new tab (null: no page). */
  private _pageLink(f: IFinding): HTMLElement | null {
    const href = rulePageUrl(this._baseUrl, f.rule);
    if (href === null) {
      return null;
    }
    return h(
      'a',
      {
        className: 'im-rule-page',
        href,
        target: '_blank',
        rel: 'noopener noreferrer',
        title: `What ${f.rule} flags, why, examples and references`
      },
      `${f.rule} rule page`
    );
  }

  /** Return the "ignore with reason" form for finding `f`: a reason is required. */
  private _reasonForm(f: IFinding): HTMLElement {
    const rigor = this._session?.rigor;
    const input = h('input', {
      className: 'im-reason-input',
      type: 'text',
      placeholder: 'why this finding does not apply',
      'aria-label': `Reason for ignoring ${f.rule}`
    }) as HTMLInputElement;
    const error = h('span', { className: 'im-reason-error', role: 'alert' });
    input.addEventListener('input', () => {
      error.textContent = '';
    });
    const save = (event: Event) => {
      event.preventDefault();
      if (!input.value.trim()) {
        error.textContent = 'A reason is required.';
        return;
      }
      this._closeForm();
      rigor?.ignore(f, input.value);
    };
    return h(
      'form',
      { className: 'im-ignore-form', onsubmit: save },
      input,
      h('button', { className: 'im-button im-save', type: 'submit' }, 'Ignore'),
      h(
        'button',
        {
          className: 'im-button im-cancel',
          type: 'button',
          onclick: () => {
            this._closeForm();
            this.render();
          }
        },
        'Cancel'
      ),
      error
    );
  }

  private _closeForm(): void {
    this._editing = null;
    this._form = null;
    this._formKey = null;
  }

  private _baseUrl = ServerConnection.makeSettings().baseUrl;
  private _selected: string | null = null;
  private _editing: string | null = null;
  private _form: HTMLElement | null = null;
  private _focusForm = false;
  private _formKey: string | null = null;
}
