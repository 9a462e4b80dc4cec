/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function Plugins(_props: ViewProps) {
  return <Page title="Plugins">{null}</Page>;
}
