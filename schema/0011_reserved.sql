-- 0011: reserved for another branch's migration (numbers must run 1..N without
-- gaps). Changes nothing. When merging after a branch that has its own 0011,
-- delete this file and keep that one.
SELECT 1;
