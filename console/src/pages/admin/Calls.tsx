/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function Calls(_props: ViewProps) {
  return <Page title="Calls">{null}</Page>;
}
