/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function MyAlerts(_props: ViewProps) {
  return <Page title="MyAlerts">{null}</Page>;
}
