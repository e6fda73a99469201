"""Function words dropped from BM25 keyword vectors, per Snowball language, written for Ajuste.

Stemming (fastembed's Snowball stemmers) covers every language in `SPARSE_LANGUAGES`; these
lists cover the languages most teams asked for. A language without a list keeps its function
words, which BM25's inverse document frequency already weighs down; a team can add its own list
as `<language>.txt` in a folder named by AJUSTE_EMBEDDING__SPARSE_MODEL_PATH.
"""

STOPWORDS: dict[str, str] = {
    "english": """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not now of off on once only or other our ours ourselves out
over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves
""",
    "spanish": """
a al algo algunas algunos ante antes como con contra cual cuando de del desde donde durante e
el ella ellas ellos en entre era eran es esa esas ese eso esos esta estaba estaban estas este
esto estos fue fueron ha han hasta hay la las le les lo los mas me mi mis mucho muy nada ni no
nos nosotros o os otra otras otro otros para pero poco por porque que quien quienes se sea
ser si sido sin sobre son su sus también te tiene tienen tu tus un una uno unos unas y ya yo él
""",
    "portuguese": """
a ao aos as até com como da das de dela dele deles depois do dos e ela elas ele eles em entre
era eram essa essas esse esses esta estas este estes eu foi foram há isso isto já lhe lhes mais
mas me mesmo meu minha muito na nas nem no nos nós o os ou para pela pelas pelo pelos por qual
quando que quem se sem ser seu seus sua suas também te tem têm um uma umas uns você vocês é
""",
    "french": """
à au aux avec ce ces cet cette dans de des du elle elles en est et être eu il ils je la le les
leur leurs lui ma mais me même mes moi mon ne nos notre nous on ont ou où par pas pour qu que
qui sa se ses son sont sur ta te tes toi ton tu un une vos votre vous y été
""",
    "german": """
aber alle als also am an auch auf aus bei bin bis bist da damit dann das dass dein deine dem
den der des dich die dies diese dieser dir doch du durch ein eine einem einen einer eines er es
für hat hatte ich ihr ihre im in ist ja kein keine man mein meine mich mir mit nach nicht noch
nun nur ob oder sein seine sich sie sind so über um und uns unser unter vom von vor war waren
was wenn wer wie wir wird zu zum zur
""",
}


def stopword_file(language: str) -> str:
    """The list as fastembed reads it: one word per line."""
    return "\n".join(STOPWORDS[language].split()) + "\n"
