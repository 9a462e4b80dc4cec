/**
 * Chinese and English. Each page keeps its own strings beside it with `defineText`, whose type
 * makes the Chinese table name exactly the keys of the English one; `useText` picks the table of
 * the language in force. The language is the user's choice (kept in localStorage), else the
 * browser's.
 */
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';

export type Lang = 'en' | 'zh';
export const LANGS: Lang[] = ['en', 'zh'];

const KEY = 'cloudbase.console.lang';

/** Whether this browser has a language picked (rather than taken from the browser's own). */
export function languagePicked(): boolean {
  const saved = localStorage.getItem(KEY);
  return saved === 'en' || saved === 'zh';
}

function initial(): Lang {
  const saved = localStorage.getItem(KEY);
  if (saved === 'en' || saved === 'zh') return saved;
  return navigator.language.toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

interface LangState {
  lang: Lang;
  setLang(lang: Lang): void;
  /** The locale for Intl formatting. */
  locale: string;
}

const LangContext = createContext<LangState>({ lang: 'en', setLang: () => undefined, locale: 'en-US' });

export function LangProvider({ children }: { children: ReactNode }) {
  const [lang, setLangState] = useState<Lang>(initial);
  useEffect(() => {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  }, [lang]);
  const value = useMemo<LangState>(
    () => ({
      lang,
      locale: lang === 'zh' ? 'zh-CN' : 'en-US',
      setLang(next) {
        localStorage.setItem(KEY, next);
        setLangState(next);
      },
    }),
    [lang],
  );
  return <LangContext.Provider value={value}>{children}</LangContext.Provider>;
}

export function useLang(): LangState {
  return useContext(LangContext);
}

/** A string, or a function of some values that gives one. */
type Entry = string | ((...args: never[]) => string);
export type Table = Record<string, Entry>;

/** A page's strings in both languages; the Chinese table must have exactly the English keys. */
export function defineText<T extends Table>(text: { en: T; zh: { [K in keyof T]: T[K] } }) {
  return text;
}

export function useText<T extends Table>(text: { en: T; zh: T }): T {
  return text[useLang().lang];
}
