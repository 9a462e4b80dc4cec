/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function Logs(_props: ViewProps) {
  return <Page title="Logs">{null}</Page>;
}
