/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function Users(_props: ViewProps) {
  return <Page title="Users">{null}</Page>;
}
