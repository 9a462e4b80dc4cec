/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function Costs(_props: ViewProps) {
  return <Page title="Costs">{null}</Page>;
}
