/** The console's entry: resume a stored session, then render. */
import { createRoot } from 'react-dom/client';
import { StrictMode } from 'react';
import { App } from './App';
import { LangProvider } from './i18n';
import { resume } from './api/session';
import './styles.css';

resume();
const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <LangProvider>
        <App />
      </LangProvider>
    </StrictMode>,
  );
}
