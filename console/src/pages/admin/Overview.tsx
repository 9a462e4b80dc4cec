/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function Overview(_props: ViewProps) {
  return <Page title="Overview">{null}</Page>;
}
