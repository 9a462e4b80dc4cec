/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function Usage(_props: ViewProps) {
  return <Page title="Usage">{null}</Page>;
}
