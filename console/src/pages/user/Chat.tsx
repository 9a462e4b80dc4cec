/** PLACEHOLDER: being written. */
import type { ViewProps } from '../../App';
import { Page } from '../../ui/components';

export function Chat(_props: ViewProps) {
  return <Page title="Chat">{null}</Page>;
}
