/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function Alerts(_props: ViewProps) {
  return <Page title="Alerts">{null}</Page>;
}
