/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function Profile(_props: ViewProps) {
  return <Page title="Profile">{null}</Page>;
}
