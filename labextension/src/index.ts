/**
 * interp-magics panels for JupyterLab 4 and Notebook 7: Rigor findings and the kernel's
 * Activations, in the right sidebar. Every JupyterLab-only service is optional, so the same
 * plugin runs in Notebook 7 (View > Right Sidebar) and is a no-op where there are no notebooks.
 */

import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { ActivationsPanel, ACTIVATIONS_PANEL_ID } from './activationspanel';
import { Companions } from './beside';
import { RigorPanel, RIGOR_PANEL_ID } from './rigorpanel';
import { Sessions } from './sessions';

const rigorIcon = new LabIcon({
  name: 'interp-magics:rigor',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
    '<path class="jp-icon3" fill="#616161" d="M12 2 4 5v6c0 5 3.4 9.7 8 11 4.6-1.3 8-6 8-11V5l-8-3zm-1.2 14.2-3.5-3.5 1.4-1.4 2.1 2.1 5-5 1.4 1.4-6.4 6.4z"/></svg>'
});

const activationsIcon = new LabIcon({
  name: 'interp-magics:activations',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
    '<path class="jp-icon3" fill="#616161" d="M3 3h4v4H3zm7 0h4v4h-4zm7 0h4v4h-4zM3 10h4v4H3zm7 0h4v4h-4zm7 0h4v4h-4zM3 17h4v4H3zm7 0h4v4h-4zm7 0h4v4h-4z"/></svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'interp-magics:panels',
  description: 'Sidebar panels for rigor findings and the kernel’s activation caches.',
  autoStart: true,
  requires: [],
  optional: [INotebookTracker, ILayoutRestorer, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker | null,
    restorer: ILayoutRestorer | null,
    labShell: ILabShell | null
  ) => {
    if (!tracker) {
      return; // an app without notebooks (e.g. a viewer): nothing to show
    }
    const sessions = new Sessions(app, tracker);
    const rigor = new RigorPanel(sessions);
    rigor.title.icon = rigorIcon;
    const activations = new ActivationsPanel(sessions);
    activations.title.icon = activationsIcon;
    app.shell.add(rigor, 'right', { rank: 600 });
    app.shell.add(activations, 'right', { rank: 610 });
    if (restorer) {
      restorer.add(rigor, rigor.id);
      restorer.add(activations, activations.id);
    }
    if (labShell) {
      // Splits exist in JupyterLab's shell only (Notebook 7 opens one document per tab).
      new Companions(app, tracker, {
        rigor: RIGOR_PANEL_ID,
        activations: ACTIVATIONS_PANEL_ID
      });
    }
  }
};

export default plugin;
