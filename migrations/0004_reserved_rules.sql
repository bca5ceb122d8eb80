-- Reserved for the per-chat rules of issue 13 (part 1), built on another
-- branch: this file only keeps the numbers in sequence so that 0005 can
-- be applied here. Whoever merges both branches deletes this file and
-- keeps the rules' 0004.
SELECT 1;
