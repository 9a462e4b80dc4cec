/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function Audit(_props: ViewProps) {
  return <Page title="Audit">{null}</Page>;
}
