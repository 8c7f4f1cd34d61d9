// The probe panel (anywidget entry): a probe's verdict in words, its accuracy next to every
// control with 95% whiskers and chance rules (one report), or per-layer lines of probe vs
// controls with the significant layers marked (a sweep), and every number in a table.
// The parts live in ./probes/.

import type { AnyWidget } from '@anywidget/types';
import './probes.css';
import type { ProbeTraits } from './probes/types';
import { render } from './probes/view';

export { shorten } from './probes/labels';
export type { ProbeData, ProbeTraits } from './probes/types';

export default { render } satisfies AnyWidget<ProbeTraits>;
